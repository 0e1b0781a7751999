//! Browser tests of the /resident page.
