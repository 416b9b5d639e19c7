"""dynrnn.kernels"""
