//! The Python `etcd3` package (PyPI etcd3==0.12.0 with protobuf 3.20, in a
//! venv under the target directory) against three raft-kv-server processes.

mod common;

use common::*;

const SCRIPT: &str = r#"
import sys, threading, time
import etcd3

ports = [int(p) for p in sys.argv[1:]]
a = etcd3.client(host='127.0.0.1', port=ports[0])
b = etcd3.client(host='127.0.0.1', port=ports[1])
c = etcd3.client(host='127.0.0.1', port=ports[2])

a.put('/test/key1', 'hey key1')
b.put('/test/key2', 'hey key2')
for value, meta in c.get_prefix('/test'):
    print(value.decode())

ok, _ = b.transaction(
    compare=[b.transactions.value('/test/key1') == 'hey key1'],
    success=[b.transactions.put('/test/txn', 'committed')],
    failure=[b.transactions.put('/test/txn', 'failed')],
)
print('txn', ok, a.get('/test/txn')[0].decode())

lease = c.lease(60)
a.put('/test/leased', 'v', lease=lease)
print('lease ttl ok', 0 < lease.remaining_ttl <= 60)
lease.refresh()
print('lease keys', [k.decode() for k in lease.keys])
lease.revoke()
print('after revoke', b.get('/test/leased')[0])

events, cancel = a.watch_prefix('/test/watch/')
def writer():
    time.sleep(1)
    b.put('/test/watch/x', 'watched')
threading.Thread(target=writer, daemon=True).start()
for ev in events:
    print('watch', type(ev).__name__, ev.key.decode(), ev.value.decode())
    break
cancel()
st = c.status()
print('status leader', st.leader is not None, 'version', st.version)
print('done')
"#;

#[test]
fn python_etcd3_client_through_every_member() {
    let python = python_with_etcd3();
    let c = Cluster::start(3);
    let ports: Vec<String> = c.members.iter().map(|m| m.port().to_string()).collect();
    let script = c.tmp.path().join("client.py");
    std::fs::write(&script, SCRIPT).expect("write script");
    let mut args = vec![script.to_string_lossy().to_string()];
    args.extend(ports);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(120, &python.to_string_lossy(), &args, &[], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let expected = [
        "hey key1\nhey key2\n",
        "txn True committed\n",
        "lease ttl ok True\n",
        "lease keys ['/test/leased']\n",
        "after revoke None\n",
        "watch PutEvent /test/watch/x watched\n",
        "status leader True version 3.5.17\n",
        "done\n",
    ];
    for e in expected {
        assert!(stdout.contains(e), "missing {e:?} in:\n{stdout}");
    }
}
