#!/usr/bin/env bash
# Regenerates Sources/LiteCNNONNX/Generated/onnx_subset.pb.swift from onnx_subset.proto.
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-swift from apple/swift-protobuf 1.39.0:
#   git clone -b 1.39.0 https://github.com/apple/swift-protobuf && swift build -c release --product protoc-gen-swift
# The generated file is committed, so neither is needed to build LiteCNN.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$here" \
  --swift_opt=Visibility=Public --swift_out="$here/../../Sources/LiteCNNONNX/Generated" "$here/onnx_subset.proto"
