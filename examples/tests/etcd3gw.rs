//! The Python `etcd3gw` package (PyPI etcd3gw==2.7.0, a client of etcd's
//! JSON gateway only, in a venv under the target directory) against three
//! raft-kv-server processes, one client per member and per API prefix.

mod common;

use common::*;

const SCRIPT: &str = r#"
import base64, sys, threading
import etcd3gw

def b64(s):
    return base64.b64encode(s.encode()).decode()

ports = [int(p) for p in sys.argv[1:]]
# The first client finds its API path through /version (3.5 → /v3/); the
# others use the older prefixes etcd 3.5 still serves.
a = etcd3gw.client(host='127.0.0.1', port=ports[0], timeout=15)
b = etcd3gw.client(host='127.0.0.1', port=ports[1], timeout=15, api_path='/v3beta/')
c = etcd3gw.client(host='127.0.0.1', port=ports[2], timeout=15, api_path='/v3alpha/')
print('api', a.api_path, b.api_path, c.api_path)

a.put('/test/key1', 'hey key1')
b.put('/test/key2', 'hey key2')
print('get', [v.decode() for v in c.get('/test/key1')], c.get('/test/none'))
print('prefix', [(m['key'].decode(), v.decode()) for v, m in c.get_prefix('/test/')])
print('delete', b.delete('/test/key2'), b.delete('/test/key2'), a.get('/test/key2'))

# Compare-and-swap: create-if-absent and replace-if-equal are transactions.
print('create', a.create('/test/new', 'v1'), b.create('/test/new', 'v2'))
print('replace', c.replace('/test/new', 'v1', 'v3'), c.replace('/test/new', 'v1', 'v4'), a.get('/test/new')[0].decode())
r = b.transaction({
    'compare': [{'key': b64('/test/new'), 'result': 'EQUAL', 'target': 'VALUE', 'value': b64('v3')}],
    'success': [{'request_put': {'key': b64('/test/txn'), 'value': b64('yes')}},
                {'request_range': {'key': b64('/test/new')}}],
    'failure': [],
})
print('txn', r.get('succeeded', False), len(r['responses']), a.get('/test/txn')[0].decode())

lease = a.lease(30)
print('lease ttl', 0 < lease.ttl() <= 30)
b.put('/test/leased', 'v', lease=lease)
print('lease keys', [k.decode() for k in lease.keys()])
print('refresh', lease.refresh())
print('revoke', lease.revoke(), c.get('/test/leased'))

lock = a.lock('resource', ttl=30)
print('lock', lock.acquire(), b.lock('resource', ttl=30).acquire(), lock.is_acquired())
print('release', lock.release(), lock.is_acquired())

st = b.status()
print('status', st['version'], st['leader'] != '0', int(st['raftIndex']) > 0)
members = c.members()
print('members', sorted(m['name'] for m in members), all(m['clientURLs'] for m in members))

# A watch: created before the put (from the next revision, so no race),
# receives it, then is cancelled.
rev = int(a.status()['header']['revision'])
events, cancel = a.watch('/test/watch', start_revision=rev + 1)
threading.Thread(target=lambda: b.put('/test/watch', 'watched'), daemon=True).start()
for ev in events:
    print('watch', ev.get('type', 'PUT'), ev['kv']['key'].decode(), ev['kv']['value'].decode())
    break
cancel()

# A prefix watch on another member sees a put and a delete.
rev = int(c.status()['header']['revision'])
events, cancel = c.watch_prefix('/test/wp/', start_revision=rev + 1)
a.put('/test/wp/1', 'x')
a.delete('/test/wp/1')
seen = []
for ev in events:
    seen.append((ev.get('type', 'PUT'), ev['kv']['key'].decode()))
    if len(seen) == 2:
        break
cancel()
print('watch prefix', seen)

ev = b.watch_once('/test/key1', timeout=10, start_revision=1)
print('watch once', ev['kv']['value'].decode())

print('delete prefix', a.delete_prefix('/test/'), c.get_prefix('/test/'))
print('done')
"#;

#[test]
fn etcd3gw_client_through_every_member_and_prefix() {
    let python = python_with("py-etcd3gw", &["etcd3gw==2.7.0"], "etcd3gw");
    let c = Cluster::start(3);
    let script = c.tmp.path().join("client.py");
    std::fs::write(&script, SCRIPT).expect("write script");
    let mut args = vec![script.to_string_lossy().to_string()];
    args.extend(c.members.iter().map(|m| m.port().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(120, &python.to_string_lossy(), &args, &[], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let expected = [
        "api /v3/ /v3beta/ /v3alpha/",
        "get ['hey key1'] []",
        "prefix [('/test/key1', 'hey key1'), ('/test/key2', 'hey key2')]",
        "delete True False []",
        "create True False",
        "replace True False v3",
        "txn True 2 yes",
        "lease ttl True",
        "lease keys ['/test/leased']",
        "refresh 30",
        "revoke True []",
        "lock True False True",
        "release True False",
        "status 3.5.17 True True",
        "members ['m1', 'm2', 'm3'] True",
        "watch PUT /test/watch watched",
        "watch prefix [('PUT', '/test/wp/1'), ('DELETE', '/test/wp/1')]",
        "watch once hey key1",
        "delete prefix True []",
        "done",
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "script output:\n{stdout}");
}
