#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| opensandbox_executor::fuzzing::sse_lines(data));
