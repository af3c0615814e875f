//! Generates the etcd v3 gRPC services (server and client) with
//! tonic-prost-build from the library's `.proto` files, using the `protoc`
//! shipped by protoc-bin-vendored so no system protoc is needed.
//!
//! Every message is mapped onto the library's generated types
//! (`raft_kv::pb`, `extern_path`): the schema is defined once, and requests
//! pass between tonic and the library without conversion.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".etcdserverpb", "::raft_kv::pb::etcdserverpb")
        .extern_path(".mvccpb", "::raft_kv::pb::mvccpb")
        .extern_path(".authpb", "::raft_kv::pb::authpb")
        .compile_protos(
            &["../raft-kv/proto/rpc.proto", "../raft-kv/proto/kv.proto", "../raft-kv/proto/auth.proto"],
            &["../raft-kv/proto"],
        )?;
    println!("cargo:rerun-if-changed=../raft-kv/proto");
    git_sha();
    rustc_version();
    Ok(())
}

/// `RAFT_KV_RUSTC` ("rustc 1.x.y") for `raft-kv-server --version`.
fn rustc_version() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("--version").output().ok();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let version: Vec<&str> = text.split_whitespace().take(2).collect();
    println!("cargo:rustc-env=RAFT_KV_RUSTC={}", if version.len() == 2 { version.join(" ") } else { "rustc".into() });
}

/// `RAFT_KV_GIT_SHA` for `raft-kv-server --version`: the build's commit,
/// abbreviated as etcd's is (9 hex digits), or etcd's "Not provided" when
/// there is no git (a build from a source archive). The build reruns when
/// the checked-out commit changes.
fn git_sha() {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git").args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let sha = git(&["rev-parse", "--short=9", "HEAD"]).unwrap_or_else(|| "Not provided".into());
    println!("cargo:rustc-env=RAFT_KV_GIT_SHA={sha}");
    // Only files that exist: cargo reruns a build script on every build
    // for a missing one. A branch whose ref is packed is followed through
    // packed-refs.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = [Some("HEAD".to_string()), branch, Some("packed-refs".to_string())];
    for path in watched.iter().flatten().filter_map(|p| git(&["rev-parse", "--git-path", p])) {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
