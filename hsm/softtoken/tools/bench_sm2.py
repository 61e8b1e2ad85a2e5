"""Quick SM2 sign/verify throughput through python-pkcs11 (1 and N threads), for comparison
with `openssl speed -seconds 3 sm2`.  Usage: python bench_sm2.py [seconds] [threads]"""

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests" / "unit" / "softtoken"))

secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
nthreads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
tmp = tempfile.mkdtemp(prefix="st-bench-")
os.environ["RACENTRE_SOFTTOKEN_DIR"] = tmp

import pkcs11  # noqa: E402
from softtoken_helpers import LIB_PATH, M, gen_sm2, init_token, write_conf  # noqa: E402

write_conf(Path(tmp))
lib = pkcs11.lib(str(LIB_PATH))
token = init_token(lib)
keeper = token.open(rw=True, user_pin="1234")
pub, priv = gen_sm2(keeper, store=True, label="bench")
msg = b"x" * 20
sig = priv.sign(msg, mechanism=M.SM2_SM3)


def run(kind, n):
    counts = [0] * n
    stop = time.perf_counter() + secs

    def work(i):
        with token.open() as s:
            k = s.get_key(label="bench", object_class=pkcs11.ObjectClass.PRIVATE_KEY if kind == "sign"
                          else pkcs11.ObjectClass.PUBLIC_KEY)
            c = 0
            if kind == "sign":
                while time.perf_counter() < stop:
                    k.sign(msg, mechanism=M.SM2_SM3)
                    c += 1
            else:
                while time.perf_counter() < stop:
                    k.verify(msg, sig, mechanism=M.SM2_SM3)
                    c += 1
            counts[i] = c
    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


for kind in ("sign", "verify"):
    for n in (1, nthreads):
        print(f"{kind:6s} {n} thread(s): {run(kind, n):8.0f} /s")
keeper.close()
