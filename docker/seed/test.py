# The seed's client check: the Python etcd3 client through nginx.
import etcd3

etcd = etcd3.client(host="127.0.0.1", port=2379)
etcd.put("/test/key1", "hey key1")
etcd.put("/test/key2", "hey key2")
for value, meta in etcd.get_prefix("/test"):
    print(value.decode())
