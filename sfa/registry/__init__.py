"""sfa.registry"""
