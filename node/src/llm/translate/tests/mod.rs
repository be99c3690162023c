//! Tests of the translators. Fixtures are transcribed from the providers' API
//! references; each cites the page it comes from.

mod anthropic_in;
mod anthropic_out;
mod fixtures;
mod garbage;
mod gemini;
mod openai;
mod sse;
mod support;
