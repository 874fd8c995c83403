"""One 177Lu cycle's steps: load -> register -> structures -> analyse -> outputs; ``run`` chains them."""
