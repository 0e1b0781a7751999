//! Browser tests of the /office page.
