"""loravault.bench"""
