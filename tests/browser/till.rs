//! Browser tests of the /till page.
