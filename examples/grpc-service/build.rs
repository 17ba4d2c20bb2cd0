//! Generates the `orders.Orders` gRPC service code from the Rust description below (tonic's
//! manual builder: no `.proto` file and no `protoc` needed; the messages are in `src/lib.rs`).

fn main() {
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(input)
            .output_type(output)
            .codec_path("tonic_prost::ProstCodec")
            .build()
    };
    let orders = tonic_build::manual::Service::builder()
        .name("Orders")
        .package("orders")
        .method(method(
            "list",
            "List",
            "crate::ListRequest",
            "crate::ListReply",
        ))
        .method(method(
            "cancel",
            "Cancel",
            "crate::CancelRequest",
            "crate::CancelReply",
        ))
        .build();
    tonic_build::manual::Builder::new().compile(&[orders]);
}
