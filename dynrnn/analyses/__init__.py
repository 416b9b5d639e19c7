"""dynrnn.analyses"""
