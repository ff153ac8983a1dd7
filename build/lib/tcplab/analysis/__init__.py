"""tcplab.analysis"""
