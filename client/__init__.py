"""loravault.client"""
