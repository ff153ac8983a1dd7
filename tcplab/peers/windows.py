"""placeholder until the Windows peer lands"""
from dataclasses import dataclass
READY_LINE = "peer ready"
def host_sysctls(peer): return {}
@dataclass(frozen=True)
class WindowsPeerSidecar:
    host: str
    fin_wait2_timeout: float
    syn: str
    capabilities = ("NET_RAW", "NET_ADMIN")
    def command(self): return ["sleep", "infinity"]
