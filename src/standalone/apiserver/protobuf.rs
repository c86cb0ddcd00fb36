//! (filled in by the protobuf work)
