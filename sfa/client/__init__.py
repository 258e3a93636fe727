"""sfa.client"""
