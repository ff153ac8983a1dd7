"""tcplab.report"""
