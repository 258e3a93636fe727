"""sfa.trust"""
