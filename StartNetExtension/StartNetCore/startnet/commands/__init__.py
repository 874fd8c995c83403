"""Command-line subcommands that drive the cycle steps; each module registers one subcommand."""
