"""The residual monitor: alerts from the gap between the twin and the measured sensors.

    calibration       what calibration stores in the manifest (thresholds, residual spreads)
    calibrate         `streamforge-calibrate`: compute a calibration from normal data
    recalibration     a window accepted as the new normal; recalibration proposals from alert-free operation
    residual_monitor  `ResidualMonitor`: one session's detectors, composed of the parts below
    reading           missing and stuck readings
    residual          the lagged prediction, spike, drift and the slow baseline
    multivariate      Hotelling T² of the drift EWMAs
    envelope          boundary inputs outside the range the twin was trained on
    input_level       boundary inputs away from their normal level
    alarm_figures     ISA-18.2 figures of an alert stream (alerts per 10 min, standing share, ...)
    alerts            open/cleared state of one alert kind over the signals
    events            `AlertEvent`, the alert kinds
    flood             alarm-flood protection
"""

from models.twin.monitor.calibration import AlertThresholds, MonitorCalibration
from models.twin.monitor.events import ALERT_KINDS, AlertEvent
from models.twin.monitor.flood import AlarmFlood, FloodLimits
from models.twin.monitor.residual_monitor import ResidualMonitor

__all__ = ["ALERT_KINDS", "AlarmFlood", "AlertEvent", "AlertThresholds", "FloodLimits", "MonitorCalibration",
           "ResidualMonitor"]
