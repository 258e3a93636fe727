"""sfa.slicemgr"""
