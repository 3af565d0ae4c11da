"""Two-stage detectors (R-CNN, Fast R-CNN, Faster R-CNN, Mask R-CNN) trained and compared with COCO AP."""
