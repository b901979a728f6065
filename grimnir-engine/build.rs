//! Compiles `proto/engine.proto` for the `process` feature, with protox: no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/engine.proto");
    #[cfg(feature = "process")]
    {
        let descriptors = protox::compile(["proto/engine.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(descriptors)?;
    }
    Ok(())
}
