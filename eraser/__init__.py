"""loravault.eraser"""
