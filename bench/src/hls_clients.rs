//! LL-HLS players and the committed nginx edge, as the server's tests have them
//! (`wsjpeg-server/tests/common`): the benchmark loads the edge with the very players the test
//! checks.

#[path = "../../wsjpeg-server/tests/common/keepalive.rs"]
pub mod keepalive;

#[path = "../../wsjpeg-server/tests/common/llhls.rs"]
pub mod llhls;

#[path = "../../wsjpeg-server/tests/common/edge.rs"]
pub mod edge;
