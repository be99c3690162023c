//! Generates the tonic/prost code from `proto/raftgate.proto` with a vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Building must not require a system protoc: point prost-build at the vendored binary.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/raftgate.proto");
    tonic_prost_build::configure().compile_protos(&["proto/raftgate.proto"], &["proto"])?;
    Ok(())
}
