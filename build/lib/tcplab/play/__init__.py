"""tcplab.play"""
