"""tcplab.observe"""
