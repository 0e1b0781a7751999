//! Browser tests of the /coop page.
