#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| k3s_autoscaler::harness::fuzz_entry::kube_objects(data));
