"""Pointmap teachers: the protocol, the registry of available teachers, the offline cache."""

from pmsplat.teachers.base import Teacher, TeacherOutput
from pmsplat.teachers.cache import CacheTeacher, CacheTeacherCfg
from pmsplat.teachers.cache_build import CacheBuildCfg, FramePolicyCfg, precompute
from pmsplat.teachers.cache_verify import VerifyReport, verify_cache
from pmsplat.teachers.registry import available_teachers, build_teacher, teacher_config, teacher_identity

__all__ = [
    "CacheBuildCfg",
    "CacheTeacher",
    "CacheTeacherCfg",
    "FramePolicyCfg",
    "Teacher",
    "TeacherOutput",
    "VerifyReport",
    "available_teachers",
    "build_teacher",
    "precompute",
    "teacher_config",
    "teacher_identity",
    "verify_cache",
]
