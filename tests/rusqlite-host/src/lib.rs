//! Only tests live here: see tests/load_extension.rs.
