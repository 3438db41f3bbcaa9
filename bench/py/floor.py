"""Python side of the `floor` case: RSS of a process that imported torch, transformers and peft and ran one op."""
import json, sys, threading

import torch, transformers, peft  # noqa: F401  (the imports are what is measured)

def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out

if "--threads" in sys.argv:
    torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
t = torch.ones(4, 4)
(t @ t).sum().item()
s = status()
mb = lambda k: round(int(s[k].split()[0]) / 1024, 1)
print(json.dumps({"case": "floor", "threads": torch.get_num_threads(), "peak_rss_mb": mb("VmHWM"), "rss_mb": mb("VmRSS"),
                  "rss_anon_mb": mb("RssAnon"), "rss_file_mb": mb("RssFile"), "os_threads": s["Threads"]}))
