//! Generates the gRPC client and server from `proto/cart.proto` (needs `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure().compile_protos(&["proto/cart.proto"], &["proto"])?;
    Ok(())
}
