"""sfa.nodemanager"""
