"""tcplab.backend"""
