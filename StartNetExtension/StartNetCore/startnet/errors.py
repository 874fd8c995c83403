"""User-facing errors.

Every error a user can cause (bad input file, missing attribute, inconsistent data, refused
trial action) is raised as a :class:`StartNetError` subclass whose message says *which* file or
object, *which* attribute and *what was expected*. The command line prints the message on one
line and exits non-zero; the Slicer modules show it in an error dialog. Anything else escaping
is a bug in this package.
"""

from __future__ import annotations


class StartNetError(Exception):
    """Base class of errors caused by input or by a refused action (not by a bug)."""

    exit_code = 2


class InputError(StartNetError):
    """Input data (files, headers, arrays, arguments) is missing, malformed or inconsistent."""


class DicomInputError(InputError):
    """A DICOM file or series cannot be used; the message names the file and attribute."""


class GeometryError(InputError):
    """Images, masks or transforms do not share or cover the expected geometry."""


class FitError(StartNetError):
    """A kinetic model could not be fitted to the data given."""


class TrialRuleError(StartNetError):
    """A trial action was refused by the protocol rules, eligibility or site scoping."""

    exit_code = 3


class OutputError(StartNetError):
    """An output location cannot be written."""
