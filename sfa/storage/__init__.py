"""sfa.storage"""
