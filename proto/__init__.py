"""loravault.proto"""
