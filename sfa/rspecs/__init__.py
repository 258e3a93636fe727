"""sfa.rspecs"""
