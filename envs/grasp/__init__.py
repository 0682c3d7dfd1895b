"""simenvs/Grasp-v0: a 7-DoF arm with a parallel gripper grasping procedural objects.

Modules: ``objects`` (the seeded object library, train/test split), ``scene`` (the MjSpec
scene), ``labels`` (segmentation, poses, 2-D boxes), ``env`` (``GraspEnv``).
"""
