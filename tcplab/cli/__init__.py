"""tcplab.cli"""
