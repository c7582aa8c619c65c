"""Pointmap teachers: the protocol, and the registry of available teachers."""

from pmsplat.teachers.base import Teacher, TeacherOutput

__all__ = ["Teacher", "TeacherOutput"]
