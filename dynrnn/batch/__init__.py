"""dynrnn.batch"""
