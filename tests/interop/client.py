#!/usr/bin/python3
"""A raftkv client in Python (grpcio), run by tests/interop/python_test.ts against a live cluster.

Uses only the standard library, grpcio and the code that buf.gen.python.yaml generates
(protoc's Python output and grpc_python_plugin), found in the directory given by --gen. Run it
with Debian's interpreter, which has Debian's python3-grpcio and python3-protobuf:

    deno task generate:python    # writes build/python/
    /usr/bin/python3 tests/interop/client.py --gen build/python \\
        --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

Every step prints one JSON object on a line of stdout, with "step" and "ok" keys. The steps:
status of every node, put, get through every node, compare-and-swap (a swap, a stale compare
that fails, an atomic create), delete, a paged range, a transaction (its success branch, then
its failure branch), a watch from a follower, an empty key (INVALID_ARGUMENT), then the leader
kill:

  - writer threads, one per node, loop Puts through their node, each with a deadline;
  - once every writer has had two Puts acknowledged, the script prints
    {"step": "kill_leader", "id": N, "endpoint": ...} and reads stdin until a line "killed";
    whoever runs the script (the Deno test) kills node N and then writes that line. With
    --no-kill the script stops before this phase;
  - it goes on until a Put started after the kill is acknowledged (a new leader serves), then
    checks that every call ended OK, UNAVAILABLE or DEADLINE_EXCEEDED within its deadline (never
    a hang), that calls were in flight while the leader was killed, and reads back every
    acknowledged Put through a surviving node.

Exit status: 0 when every step is ok, 1 when one is not, 2 on bad usage, 3 when grpcio or the
generated code cannot be imported.
"""

import argparse
import json
import os
import sys
import threading
import time

OK_CODES_AROUND_KILL = ("OK", "UNAVAILABLE", "DEADLINE_EXCEEDED")


def emit(step, ok, **fields):
    """Prints one result line: {"step": ..., "ok": ..., **fields}."""
    print(json.dumps({"step": step, "ok": bool(ok), **fields}, sort_keys=False), flush=True)
    return ok


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gen", required=True, help="directory holding the generated raftkv/v1/*_pb2*.py")
    p.add_argument("--endpoints", required=True, help="host:port of every node, comma-separated")
    p.add_argument("--deadline", type=float, default=3.0, help="per-call deadline, seconds")
    p.add_argument("--budget", type=float, default=60.0, help="bound of each wait, seconds")
    p.add_argument("--key-prefix", default="py", help="prefix of every key written")
    p.add_argument("--no-kill", action="store_true", help="skip the leader-kill phase")
    p.add_argument("--cacert", help="speak TLS, trusting the nodes' certificates this CA (PEM) signed")
    p.add_argument("--cert", help="client certificate (PEM), for nodes started with --client-ca")
    p.add_argument("--key", help="the client certificate's private key (PEM)")
    return p.parse_args()


args = parse_args()
ENDPOINTS = [e.strip() for e in args.endpoints.split(",") if e.strip()]
if not ENDPOINTS:
    print("client.py: --endpoints names no endpoint", file=sys.stderr)
    sys.exit(2)

try:
    import grpc
except ImportError as err:
    emit("import", False, error=str(err), python=sys.executable,
         hint="install Debian's gRPC for this interpreter: apt-get install python3-grpcio python3-protobuf")
    sys.exit(3)

sys.path.insert(0, os.path.abspath(args.gen))
try:
    from raftkv.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc
    import google.protobuf
except ImportError as err:
    emit("import", False, error=str(err), gen=args.gen,
         hint="generate the Python code first: deno task generate:python")
    sys.exit(3)

emit("import", True, python=sys.executable, grpc=grpc.__version__,
     protobuf=google.protobuf.__version__)

# One channel per node. No HTTP proxy, whatever the environment says: the nodes are local.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def open_channel(ep):
    """A channel to ep: plaintext, or TLS with --cacert (and a client certificate with --cert)."""
    if args.cacert is None:
        return grpc.insecure_channel(ep, options=CHANNEL_OPTIONS)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read_file(args.cacert),
        private_key=read_file(args.key) if args.key else None,
        certificate_chain=read_file(args.cert) if args.cert else None,
    )
    return grpc.secure_channel(ep, creds, options=CHANNEL_OPTIONS)


channels = {ep: open_channel(ep) for ep in ENDPOINTS}
kv = {ep: kv_pb2_grpc.KVServiceStub(ch) for ep, ch in channels.items()}
cluster = {ep: cluster_pb2_grpc.ClusterServiceStub(ch) for ep, ch in channels.items()}

failed = []  # names of the steps that were not ok


def check(step, ok, **fields):
    if not emit(step, ok, **fields):
        failed.append(step)
    return ok


def code_name(err):
    """The gRPC status name of an RpcError ("UNAVAILABLE"), or its type for anything else."""
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        return err.code().name
    return type(err).__name__


def text(b):
    return b.decode("utf-8", errors="replace")


def status_of(ep, timeout=2.0):
    s = cluster[ep].Status(cluster_pb2.StatusRequest(), timeout=timeout)
    return {
        "endpoint": ep,
        "id": s.id,
        "role": cluster_pb2.Role.Name(s.role),
        "term": s.term,
        "leader_id": s.leader_id,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_log_index": s.last_log_index,
        "peers": [{"id": p.id, "match_index": p.match_index} for p in s.peers],
    }


def wait_for_leader():
    """Polls Status on every node until all name one leader, in one term, that says ROLE_LEADER."""
    deadline = time.monotonic() + args.budget
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            all_ = [status_of(ep, timeout=1.0) for ep in ENDPOINTS]
            lead, term = all_[0]["leader_id"], all_[0]["term"]
            agree = lead != 0 and all(s["leader_id"] == lead and s["term"] == term for s in all_)
            leader = next((s for s in all_ if s["id"] == lead and s["role"] == "ROLE_LEADER"), None)
            if agree and leader is not None:
                return all_, leader
            last = " ".join(f'{s["id"]}->{s["leader_id"]}@t{s["term"]}' for s in all_)
        except grpc.RpcError as err:
            last = f"{code_name(err)}: {err.details()}"
        time.sleep(0.05)  # pacing between polls
    raise TimeoutError(f"no agreed leader after {args.budget}s ({last})")


# --- status of every node, and the leader ------------------------------------------------------
try:
    statuses, leader = wait_for_leader()
except TimeoutError as err:
    emit("leader", False, error=str(err))
    sys.exit(1)
for s in statuses:
    check("status", s["role"] in ("ROLE_LEADER", "ROLE_FOLLOWER") and s["id"] > 0, **s)
# The leader reports the replication progress of the others (and, as raftkv does, its own).
check("leader", {p["id"] for p in leader["peers"]} >= {s["id"] for s in statuses} - {leader["id"]},
      id=leader["id"],
      endpoint=leader["endpoint"], term=leader["term"], peers=leader["peers"])
LEADER_EP = leader["endpoint"]
FOLLOWERS = [ep for ep in ENDPOINTS if ep != LEADER_EP]
FIRST = FOLLOWERS[0] if FOLLOWERS else LEADER_EP  # a follower forwards to the leader

# --- put, get, compare-and-swap, delete ---------------------------------------------------------
D = args.deadline
key = f"{args.key_prefix}/greeting"
try:
    r = kv[FIRST].Put(kv_pb2.PutRequest(key=key, value=b"hello"), timeout=D)
    check("put", r.index > 0, endpoint=FIRST, key=key, value="hello", index=r.index)

    for ep in ENDPOINTS:
        r = kv[ep].Get(kv_pb2.GetRequest(key=key), timeout=D)
        check("get", r.found and r.value == b"hello", endpoint=ep, key=key, found=r.found,
              value=text(r.value))

    r = kv[LEADER_EP].CompareAndSwap(
        kv_pb2.CompareAndSwapRequest(key=key, expected=b"hello", value=b"bonjour"), timeout=D)
    check("cas_swap", r.succeeded and r.found and r.value == b"bonjour", endpoint=LEADER_EP,
          key=key, expected="hello", succeeded=r.succeeded, found=r.found, value=text(r.value))

    # A stale compare fails and hands back the value that did not match.
    r = kv[FIRST].CompareAndSwap(
        kv_pb2.CompareAndSwapRequest(key=key, expected=b"hello", value=b"hola"), timeout=D)
    check("cas_stale", not r.succeeded and r.found and r.value == b"bonjour", endpoint=FIRST,
          key=key, expected="hello", succeeded=r.succeeded, found=r.found, value=text(r.value))

    # `expected` unset: an atomic create, which succeeds once and then fails.
    fresh = f"{args.key_prefix}/fresh"
    req = kv_pb2.CompareAndSwapRequest(key=fresh, value=b"first")
    assert not req.HasField("expected")
    r1 = kv[FIRST].CompareAndSwap(req, timeout=D)
    r2 = kv[FIRST].CompareAndSwap(kv_pb2.CompareAndSwapRequest(key=fresh, value=b"second"), timeout=D)
    check("cas_create", r1.succeeded and not r2.succeeded and r2.value == b"first", endpoint=FIRST,
          key=fresh, first={"succeeded": r1.succeeded, "value": text(r1.value)},
          second={"succeeded": r2.succeeded, "found": r2.found, "value": text(r2.value)})

    r = kv[FIRST].Delete(kv_pb2.DeleteRequest(key=key), timeout=D)
    again = kv[LEADER_EP].Delete(kv_pb2.DeleteRequest(key=key), timeout=D)
    after = kv[FIRST].Get(kv_pb2.GetRequest(key=key), timeout=D)
    check("delete", r.deleted and not again.deleted and not after.found, endpoint=FIRST, key=key,
          deleted=r.deleted, deleted_again=again.deleted, found_after=after.found)
except grpc.RpcError as err:
    check("kv_calls", False, code=code_name(err), details=err.details())

# --- range, txn, watch (the application API) -----------------------------------------------------
try:
    base = f"{args.key_prefix}/app"
    first = kv[FIRST].Put(kv_pb2.PutRequest(key=f"{base}/a", value=b"1"), timeout=D)
    kv[FIRST].Put(kv_pb2.PutRequest(key=f"{base}/b", value=b"2"), timeout=D)
    kv[FIRST].Put(kv_pb2.PutRequest(key=f"{base}/c", value=b"3"), timeout=D)
    page1 = kv[FIRST].Range(kv_pb2.RangeRequest(prefix=f"{base}/", limit=2), timeout=D)
    page2 = kv[FIRST].Range(
        kv_pb2.RangeRequest(prefix=f"{base}/", limit=2, continuation=page1.continuation), timeout=D)
    keys = [x.key for x in page1.kvs] + [x.key for x in page2.kvs]
    check("range", keys == [f"{base}/a", f"{base}/b", f"{base}/c"] and page1.more and not page2.more
          and page1.kvs[0].mod_index == first.index, endpoint=FIRST, keys=keys)

    # Move a's value to d only if a is unchanged since its put.
    txn = kv_pb2.TxnRequest(
        compares=[kv_pb2.Compare(key=f"{base}/a", mod_index_equals=first.index)],
        success=[kv_pb2.RequestOp(delete=kv_pb2.DeleteRequest(key=f"{base}/a")),
                 kv_pb2.RequestOp(put=kv_pb2.PutRequest(key=f"{base}/d", value=b"1"))],
        failure=[kv_pb2.RequestOp(get=kv_pb2.GetRequest(key=f"{base}/a"))])
    t1 = kv[FIRST].Txn(txn, timeout=D)
    t2 = kv[FIRST].Txn(txn, timeout=D)
    check("txn", t1.succeeded and t1.responses[0].delete.deleted and not t2.succeeded
          and not t2.responses[0].get.found, endpoint=FIRST, index=t1.index,
          succeeded=[t1.succeeded, t2.succeeded])

    # The changes since the first put, from a follower's applied state, in log order.
    events = []
    stream = kv[FIRST].Watch(kv_pb2.WatchRequest(prefix=f"{base}/", start_index=first.index),
                             timeout=D)
    try:
        for res in stream:
            events += [(kv_pb2.WatchEvent.Kind.Name(e.kind), e.key, e.index) for e in res.events]
            if res.through_index >= t1.index:
                break
    finally:
        stream.cancel()
    names = [(k, key) for k, key, _ in events]
    check("watch", names == [("KIND_PUT", f"{base}/a"), ("KIND_PUT", f"{base}/b"),
                             ("KIND_PUT", f"{base}/c"), ("KIND_DELETE", f"{base}/a"),
                             ("KIND_PUT", f"{base}/d")]
          and events[-1][2] == events[-2][2] == t1.index, endpoint=FIRST,
          events=[list(e) for e in events])
except grpc.RpcError as err:
    check("app_calls", False, code=code_name(err), details=err.details())

try:
    kv[FIRST].Put(kv_pb2.PutRequest(key="", value=b"x"), timeout=D)
    check("empty_key", False, code="OK")
except grpc.RpcError as err:
    check("empty_key", err.code() == grpc.StatusCode.INVALID_ARGUMENT, code=code_name(err),
          details=err.details())

if args.no_kill:
    check("done", not failed, failed=failed)
    sys.exit(0 if not failed else 1)

# --- the leader is killed while Puts are under way -----------------------------------------------
lock = threading.Condition()
calls = []  # (endpoint, start, end, code, key)
acked = {}  # key -> value, Puts acknowledged
stop = threading.Event()
killed_at = [None]  # monotonic time the "killed" line was read


def read_stdin():
    for line in sys.stdin:
        if line.strip() == "killed":
            with lock:
                killed_at[0] = time.monotonic()
                lock.notify_all()
            return


def writer(w, ep):
    seq = 0
    while not stop.is_set():
        k = f"{args.key_prefix}/kill/{w}/{seq}"
        v = f"{k}@{ep}".encode()
        seq += 1
        start = time.monotonic()
        details = ""
        try:
            kv[ep].Put(kv_pb2.PutRequest(key=k, value=v), timeout=D)
            code = "OK"
        except grpc.RpcError as err:
            code = code_name(err)
            details = err.details()
        end = time.monotonic()
        with lock:
            calls.append((ep, start, end, code, k, details))
            if code == "OK":
                acked[k] = v
            lock.notify_all()
        if code != "OK":
            stop.wait(0.05)  # pacing of retries while there is no leader


def wait_until(what, pred):
    deadline = time.monotonic() + args.budget
    with lock:
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {args.budget}s waiting for {what}")
            lock.wait(min(left, 0.5))


threading.Thread(target=read_stdin, daemon=True).start()
writers = [threading.Thread(target=writer, args=(w, ep), daemon=True) for w, ep in enumerate(ENDPOINTS)]
for t in writers:
    t.start()

phase_ok = True
marker_at = None
try:
    wait_until("two acknowledged Puts per node",
               lambda: all(sum(1 for c in calls if c[0] == ep and c[3] == "OK") >= 2 for ep in ENDPOINTS))
    marker_at = time.monotonic()
    emit("kill_leader", True, id=leader["id"], endpoint=LEADER_EP, acked_so_far=len(acked))
    wait_until('the line "killed" on stdin', lambda: killed_at[0] is not None)
    wait_until("a Put started after the kill to be acknowledged",
               lambda: any(c[3] == "OK" and c[1] >= killed_at[0] for c in calls))
    wait_until("a call to the killed leader started after the kill",
               lambda: any(c[0] == LEADER_EP and c[1] >= killed_at[0] for c in calls))
except TimeoutError as err:
    phase_ok = check("leader_kill_wait", False, error=str(err))
finally:
    stop.set()
    for t in writers:
        t.join(D + 5)
    hung = [t.name for t in writers if t.is_alive()]

if phase_ok:
    with lock:
        snapshot = list(calls)
    k0 = killed_at[0]
    codes = {}
    for ep, _, _, code, _, _ in snapshot:
        codes.setdefault(ep, {}).setdefault(code, 0)
        codes[ep][code] += 1
    bad = [c for c in snapshot if c[3] not in OK_CODES_AROUND_KILL]
    longest = max(c[2] - c[1] for c in snapshot)
    # In flight during the kill: started before "killed" was read, ended after the marker.
    in_flight = [c for c in snapshot if c[1] < k0 and c[2] > marker_at]
    in_flight_codes = {}
    for c in in_flight:
        in_flight_codes[c[3]] = in_flight_codes.get(c[3], 0) + 1
    to_dead_after = [c[3] for c in snapshot if c[0] == LEADER_EP and c[1] >= k0]
    new_acks = sum(1 for c in snapshot if c[3] == "OK" and c[1] >= k0)
    check("leader_kill",
          not bad and not hung and longest <= D + 1.0 and len(in_flight) > 0
          and new_acks > 0 and to_dead_after and "OK" not in to_dead_after,
          killed=leader["id"], calls=len(snapshot), codes=codes,
          bad=[{"endpoint": c[0], "code": c[3], "details": c[5]} for c in bad[:5]], hung=hung,
          longest_call_s=round(longest, 3), deadline_s=D, in_flight_at_kill=len(in_flight),
          in_flight_codes=in_flight_codes, acked_after_kill=new_acks,
          calls_to_killed_after_kill=len(to_dead_after))

    # Every acknowledged Put is there, read through a surviving node.
    reader = FOLLOWERS[0] if FOLLOWERS else LEADER_EP
    missing = []
    try:
        for k, v in sorted(acked.items()):
            r = kv[reader].Get(kv_pb2.GetRequest(key=k), timeout=D)
            if not r.found or r.value != v:
                missing.append(k)
        check("leader_kill_readback", not missing, endpoint=reader, acked=len(acked),
              missing=missing[:10])
    except grpc.RpcError as err:
        check("leader_kill_readback", False, endpoint=reader, code=code_name(err),
              details=err.details())

    # The survivors agree on a new leader; Status through every surviving node.
    try:
        new_leader = None
        deadline = time.monotonic() + args.budget
        while new_leader is None and time.monotonic() < deadline:
            sts = []
            for ep in FOLLOWERS:
                try:
                    sts.append(status_of(ep, timeout=1.0))
                except grpc.RpcError:
                    pass
            leads = {s["leader_id"] for s in sts}
            if len(sts) == len(FOLLOWERS) and len(leads) == 1 and 0 not in leads:
                new_leader = leads.pop()
            else:
                time.sleep(0.05)  # pacing between polls
        check("new_leader", new_leader is not None and new_leader != leader["id"],
              id=new_leader, old=leader["id"])
    except Exception as err:  # noqa: BLE001 - reported, not raised
        check("new_leader", False, error=repr(err))

for ch in channels.values():
    ch.close()
check("done", not failed, failed=failed)
sys.exit(0 if not failed else 1)
