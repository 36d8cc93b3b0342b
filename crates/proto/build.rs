//! Compiles the `.proto` files under `proto/` with protox (pure Rust, no system `protoc`) and
//! generates tonic clients and servers: the Layotto API (`spec.proto.runtime.v1`) and the Dapr
//! API (`dapr.proto.common.v1`, `dapr.proto.runtime.v1`) and Dapr's sidecar-to-sidecar API
//! (`dapr.proto.internals.v1`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "spec/proto/runtime/v1/runtime.proto",
        "spec/proto/runtime/v1/appcallback.proto",
        "spec/proto/runtime/v1/lifecycle.proto",
        "dapr/proto/common/v1/common.proto",
        "dapr/proto/runtime/v1/dapr.proto",
        "dapr/proto/runtime/v1/appcallback.proto",
        "dapr/proto/internals/v1/service_invocation.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
