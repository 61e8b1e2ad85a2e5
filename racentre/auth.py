"""Moved to ``access.auth`` (issue 16 §1: ``Principal``/``require_roles`` below the domain packages).

This alias keeps branches written against the old path importing until they are merged (the module
object is ``access.auth`` itself, so nothing is defined twice); new code imports ``access.auth``.
Remove once no branch in flight uses it.
"""
import sys

import access.auth

sys.modules[__name__] = access.auth
