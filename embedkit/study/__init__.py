"""`embedkit study`: every model trained, encoded, evaluated and drawn, as resumable stages, with an HTML report."""

from embedkit.study.plan import PLANS, StudyPlan, make_plan
from embedkit.study.run import StudyResult, run_study, stage_titles

__all__ = ["PLANS", "StudyPlan", "StudyResult", "make_plan", "run_study", "stage_titles"]
