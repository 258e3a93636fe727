"""sfa.aggregate"""
