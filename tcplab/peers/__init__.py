"""tcplab.peers"""
