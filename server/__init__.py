"""loravault.server"""
