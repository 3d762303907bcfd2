"""`embedkit study`: every model trained, encoded, evaluated and drawn, as resumable stages, with an HTML report."""

from typing import TYPE_CHECKING

from embedkit._util.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name loads on first use
    from embedkit.study.plan import PLANS, StudyPlan, make_plan
    from embedkit.study.run import StudyResult, run_study, stage_titles

__all__ = ["PLANS", "StudyPlan", "StudyResult", "make_plan", "run_study", "stage_titles"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PLANS": "embedkit.study.plan",
        "StudyPlan": "embedkit.study.plan",
        "make_plan": "embedkit.study.plan",
        "StudyResult": "embedkit.study.run",
        "run_study": "embedkit.study.run",
        "stage_titles": "embedkit.study.run",
    },
)
